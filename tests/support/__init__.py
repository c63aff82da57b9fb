"""Real services for the test session: an Apache Kafka broker and a PostgreSQL server."""
