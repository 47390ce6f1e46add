"""What serving and training share: the artifact manifest and (later) the online feature store.

`app/` never imports `training/`; anything both sides must agree on lives here.
"""
