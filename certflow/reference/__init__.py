"""The reference flow: batches, enrolments, scores and learner profiles in
(:mod:`.agents`), their models (:mod:`.models`), and the learner state every other
flow reads and writes (:mod:`.state`)."""
