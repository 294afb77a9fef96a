"""Where keys live: the keyspace interface and its embedded in-memory implementation."""
