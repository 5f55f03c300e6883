"""Fine-tuning SAM 2: the training forward over clips (through the inference network code), the losses,
prompt simulation, the optimizer and schedule, and the data readers (`model.training.data`)."""
