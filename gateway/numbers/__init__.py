"""The gateway's number inventory as operators run it: importing numbers, listing them, leasing them to accounts,
their lifecycle (activate, release) and operator settings. The rules themselves (what a state may become, what a
row of inventory may hold) are in the registry leaf (registry.states, registry.inventory); this room reads and writes
them for the API. The 10DLC brands and campaigns numbers join are in gateway.tendlc; an account's own view of its
numbers and their two-way settings is in gateway.two_way.numbers."""
