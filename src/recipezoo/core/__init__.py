"""What every domain shares: errors, seeding, pretrained loading, fine-tuning, optimizers, export."""
