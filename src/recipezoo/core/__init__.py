"""What every task shares: the base LightningModule, the task registry, bundle loading, backbones, pretrained
weights, fine-tuning, optimizers, export, errors, seeding."""
