"""The workstack Pulumi program: one config file per stack, composed from the components."""
