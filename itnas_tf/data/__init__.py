"""Data for search and retraining: sources (`--dataset`) and the seeded search split."""

from itnas_tf.data.pipeline import AUGMENTATIONS, SearchData, search_data, split_indices
from itnas_tf.data.sources import DataError, load_arrays
