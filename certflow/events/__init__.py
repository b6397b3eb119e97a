"""What every flow shares about events: Sunbird's event models and parsing
(:mod:`.models`), the records certflow publishes (:mod:`.records`), and how an input
event ends as success, skipped or dead-lettered (:mod:`.settle`)."""
