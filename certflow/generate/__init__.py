"""The generate flow: Sunbird's generate request (:mod:`.models`), the certificate
factory (:mod:`.factory`), and the agents that make and publish certificates
(:mod:`.agents`)."""
