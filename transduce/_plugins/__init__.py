"""The plugin system: parameter declarations, component contracts, hook specifications, the registry
and the recipe positions that name components."""
