"""The patient-notification connector: bookings in, reminders out through the channel cascade."""
