"""The market: listings, bids, auction close, settlement into the escrow, delivery, store."""
