"""The quality loop with providers (issue 15).

- :mod:`hub.quality.impact`: the consumer-impact check before publish; a candidate that
  flips too many decision-field values is held for the provider's confirmation;
- :mod:`hub.quality.disputes`: disputes (疑义) on published records, answered by the
  provider within a working-day deadline, flagged to every reader meanwhile;
- :mod:`hub.quality.agreement`: the same identifier compared across resources against the
  authoritative source per attribute (一数一源);
- :mod:`hub.quality.scorecard`: per department and month, how it is doing.
"""
