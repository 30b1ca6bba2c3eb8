# Registers ZooBackbone (and ZooAlbu) with mmengine / mmdet / mmseg when the config is loaded.
custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)
