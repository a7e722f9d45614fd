"""Carrier connectors: rates for a parcel and tracking news in (see `connectors.sdk.CarrierConnector`)."""
