"""What one inbound mail or one scheduled pass does, in one transaction each."""
