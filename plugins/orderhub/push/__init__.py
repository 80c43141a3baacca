"""Push intake (issue 17): platform push messages -> NATS JetStream -> raw."""
