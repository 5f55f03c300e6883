"""sam2-ui's tests, by layer: model/, engine/, apps/; shared helpers in support/."""
