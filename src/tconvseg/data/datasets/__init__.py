"""Datasets (CamVid, VOC, Pets, folders, synthetic shapes), their class tables (`info`), decoding and class statistics."""
