"""The torch side: layer embeddings, ReLU rank regions, built-in and random networks."""
