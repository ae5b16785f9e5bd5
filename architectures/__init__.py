"""The model zoo: one .cnn file per family, shipped inside the package as cnndsl.architectures."""
