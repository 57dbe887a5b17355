"""tell: Slack, PagerDuty, Alertmanager and console, through a durable outbox."""
