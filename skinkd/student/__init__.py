"""The student stage: the paper's small CNN, the distillation loss and Distiller, and its
training loop from the teacher's stored soft labels."""
