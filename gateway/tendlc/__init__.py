"""10DLC as operators run it through the API: brands, campaigns, the numbers campaigns hold, and the local
registry's clock. The states and what may become what are in the registry leaf (registry.states, which raises
states.RegistryError); this room finds the records and applies those changes for the API. (Named for 10DLC rather
than "registry" so that it is not confused with the registry leaf it uses.)"""
