"""Every workaround for a defect of faust-streaming or aiokafka, one module each, with
the upstream issue it answers:

* :mod:`.transport`: commits never pass an unprocessed record (faust-streaming #216,
  #221), ``flush`` waits for delivery, exactly-once transactions by source
  partition, changelog partitions without a start, replication of created topics;
* :mod:`.global_table`: a replicated batch directory instead of a GlobalTable
  (faust-streaming #283);
* :mod:`.routing`: requests answered by the key's owner, forwarding bytes (Faust's
  ``table_route`` forwards text), and the owner lookup on Apache Kafka;
* :mod:`.liveness`: a worker whose group coordination or table recovery died stops;
* :mod:`.web`: Faust's table and router pages off;
* :mod:`.app`: transport, data directory, root log level;
* :mod:`.versions`: the versions all of the above were written for, checked at start.
"""
