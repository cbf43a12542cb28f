"""Vision: image classification on torchvision and timm backbones."""
