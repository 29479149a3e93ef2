"""Model training and export (scikit-learn, skl2onnx). Never imported by the serving path."""
