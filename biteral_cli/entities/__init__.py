"""What each kind of record the tool imports (customers, products) needs beyond the shared pipeline."""
