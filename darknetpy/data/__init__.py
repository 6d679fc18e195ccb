"""Data sets in Darknet's formats: ``.data`` files, image lists, labels."""
from .datafile import DataConfig, read_names
from .labels import LabelProblem, label_path, read_image_list, read_labels

__all__ = ["DataConfig", "LabelProblem", "label_path", "read_image_list", "read_labels", "read_names"]
from .dataset import DetectionDataset, collate, train_size

__all__ += ["DetectionDataset", "collate", "train_size"]
