"""napari adapters: reader, sample data and dock widgets over the Qt-free core.

Only this subpackage imports napari, magicgui or Qt (through qtpy).
"""
