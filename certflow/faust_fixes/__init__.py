"""Every workaround for a defect of faust-streaming or aiokafka, one module each, with
the upstream issue it answers:

* :mod:`.transport`: ``flush`` waits for delivery, replication of created topics;
* :mod:`.consumer`: commits never pass an unprocessed record (faust-streaming #216,
  #221), each record handed to the agents once, and only after its partition was
  sought, changelog partitions without a start;
* :mod:`.exactly_once`: commits only between events, transactions by source
  partition, changelog ends asked of the broker;
* :mod:`.global_table`: a replicated batch directory instead of a GlobalTable
  (faust-streaming #283);
* :mod:`.routing`: requests answered by the key's owner, forwarding bytes (Faust's
  ``table_route`` forwards text), and the owner lookup on Apache Kafka;
* :mod:`.tables`: table writes while a new changelog's partitions are not yet known,
  and reads with one store lookup;
* :mod:`.liveness`: a worker whose group coordination or table recovery died stops;
* :mod:`.web`: Faust's table and router pages off;
* :mod:`.app`: transport, data directory, root log level;
* :mod:`.versions`: the versions all of the above were written for, checked at start.
"""
