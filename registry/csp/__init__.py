"""The Campaign Registry's CSP API: the client a Campaign Service Provider calls it with (``client``) and a registry
simulator of the same shape served over HTTP (``simulator``), with its rules (``rules``), state (``state``) and
webhook sender (``webhooks``). Nothing here imports the gateway."""
