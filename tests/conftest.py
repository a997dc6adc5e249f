"""Shared test settings."""

import torch

# Tests run as two xdist workers on two cores; one thread each avoids oversubscription, which
# made small forward passes many times slower.
torch.set_num_threads(1)
