"""Block 4: shipping — carriers, shipments and packages, documents, tracking, help against late shipment."""
