"""Code shared by the intake, classifier and notifier services."""
