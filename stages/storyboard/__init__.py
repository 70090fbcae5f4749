"""The storyboard language: the schema, units, YAML loading, problems, validation and the resolver of the files a storyboard names."""
