{#
    Freshness in SQL: the rule of hub/freshness.py, with the same labels.
    published: a boolean expression (there is a version); data_as_of: the timestamp its
    data was loaded (naive UTC); max_age_seconds: the update cycle's
    (catalog_update_cycles.max_age_seconds); now: a timestamp expression, utc_now() by default.
    tests/hub/test_freshness.py checks it against the Python function on both engines.
#}
{% macro freshness_status(published, data_as_of, max_age_seconds, now=none) -%}
    case
        when not ({{ published }}) then 'unpublished'
        when {{ data_as_of }} is null then 'unknown'
        when {{ data_as_of }}
            >= {{ now if now is not none else utc_now() }} - {{ max_age_seconds }} * interval '1 second'
            then 'fresh'
        else 'stale'
    end
{%- endmacro %}
