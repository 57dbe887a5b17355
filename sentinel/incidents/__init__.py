"""remember: findings become durable incidents with a lifecycle."""
