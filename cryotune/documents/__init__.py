"""The documents cryotune stores (trial result, pair record, sweep plan): one typed, versioned
class each, which both writes and reads its file, so writers and readers cannot drift apart."""
