"""How skills are learned and what they are made of; pretrained skills ship in ``pretrained/``."""
