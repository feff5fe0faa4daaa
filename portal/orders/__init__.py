"""Orders: intake from the marketplace, stock reservation, the order state machine and the merchant's desk."""
