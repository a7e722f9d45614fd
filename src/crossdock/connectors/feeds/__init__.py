"""Disruption feeds: connectors that read what is disrupting the network now (weather alerts) and
turn it into `crossdock.routing.disruptions.Disruption`s. Registered as `feed.<name>` entry points."""
