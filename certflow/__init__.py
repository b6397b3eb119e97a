"""certflow: Sunbird-compatible course certificates on Faust and Kafka."""
