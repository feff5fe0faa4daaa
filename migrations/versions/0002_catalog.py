"""catalog: products, uploads, issues, templates, history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:55:48.470523
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('catalog_column_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_catalog_column_templates_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_column_templates')),
    sa.UniqueConstraint('merchant_id', name=op.f('uq_catalog_column_templates_merchant_id'))
    )
    op.create_table('catalog_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_by_token_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=255), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('samples', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('deactivate_missing', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.Column('deactivated', sa.Integer(), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_report_key', sa.String(length=255), nullable=True),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_catalog_uploads_job_id_jobs')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_catalog_uploads_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_catalog_uploads_uploaded_by_id_users')),
    sa.ForeignKeyConstraint(['uploaded_by_token_id'], ['api_tokens.id'], name=op.f('fk_catalog_uploads_uploaded_by_token_id_api_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_uploads'))
    )
    with op.batch_alter_table('catalog_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_uploads_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_catalog_uploads_status'), ['status'], unique=False)

    op.create_table('catalog_upload_issues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('row', sa.Integer(), nullable=True),
    sa.Column('column', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['catalog_uploads.id'], name=op.f('fk_catalog_upload_issues_upload_id_catalog_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_upload_issues'))
    )
    with op.batch_alter_table('catalog_upload_issues', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalog_upload_issues_upload_id'), ['upload_id'], unique=False)

    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=128), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('brand', sa.String(length=200), nullable=False),
    sa.Column('gtin', sa.String(length=14), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=500), nullable=False),
    sa.Column('price', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('images', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('source_hash', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_upload_id', sa.Integer(), nullable=True),
    sa.Column('last_upload_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_products_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('merchant_id', 'sku', name=op.f('uq_products_merchant_id'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_category'), ['category'], unique=False)
        batch_op.create_index('ix_products_merchant_status', ['merchant_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_products_updated_at'), ['updated_at'], unique=False)

    op.create_table('product_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=True),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('actor_token_id', sa.Integer(), nullable=True),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_token_id'], ['api_tokens.id'], name=op.f('fk_product_events_actor_token_id_api_tokens')),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_product_events_actor_user_id_users')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_product_events_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_events_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['catalog_uploads.id'], name=op.f('fk_product_events_upload_id_catalog_uploads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_events'))
    )
    with op.batch_alter_table('product_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_events_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_events_product_id'), ['product_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('product_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_events_product_id'))
        batch_op.drop_index(batch_op.f('ix_product_events_merchant_id'))

    op.drop_table('product_events')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_updated_at'))
        batch_op.drop_index('ix_products_merchant_status')
        batch_op.drop_index(batch_op.f('ix_products_category'))

    op.drop_table('products')
    with op.batch_alter_table('catalog_upload_issues', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_upload_issues_upload_id'))

    op.drop_table('catalog_upload_issues')
    with op.batch_alter_table('catalog_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalog_uploads_status'))
        batch_op.drop_index(batch_op.f('ix_catalog_uploads_merchant_id'))

    op.drop_table('catalog_uploads')
    op.drop_table('catalog_column_templates')
