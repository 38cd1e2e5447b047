"""OS keyring vault for every credential; nothing secret ever reaches the database or logs."""
