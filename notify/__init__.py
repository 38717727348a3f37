"""Notifications: incidents (what to say and when), the outbox (delivery with retries) and Apprise
channels. `notify.service.NotificationService` is what the monitor holds."""
