"""Where renders live on disk: the content-addressed cache, locks, cache references, disk estimates and render folders. The only code that knows the on-disk layout and temp names."""
