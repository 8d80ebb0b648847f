"""genstore's built-in storage plugins. Found through the ``genstore`` entry-point group; never
import these modules by hand, open a store by URL instead (``genstore.open_store(url)``)."""
