"""Keras building blocks that the teacher and the student share: the seven-to-two-class
output layer, safe model loading, batch feeding, optimisers and the resumable fit loop."""
