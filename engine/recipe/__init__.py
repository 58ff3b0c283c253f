"""Recipes over the pipeline: tune the classical method, preprocess, train and evaluate in one
run (``canopygaps recipe``), and leave-one-site-out cross-validation of that recipe
(``canopygaps crossval``)."""
