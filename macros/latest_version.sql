{#
    One row per primary key: the key's latest version, deleted keys removed.

    The latest version of a key is its row of the highest _batch_id (batch ids sort in
    load order), then of the highest `cursor`; on a tie a delete wins, as in
    hub.load.live_keys_sql. A key whose latest row has _op = 'delete' is gone.
    _source_duplicates counts the rows the source delivered for the key in the chosen
    batch (1 normally; more is a duplicate key in the source, reported by the gate).

    relation     the staging model (every version of every key, with _op, _batch_id)
    primary_key  the key columns
    cursor       the column ordering versions within a batch, or none
    fields       the catalog fields to keep, in catalog order

    The models in models/shared/ call this with arguments generated from the catalog.
#}
{% macro latest_version(relation, primary_key, cursor, fields) %}
    {%- set key_columns = [] -%}
    {%- for column in primary_key -%}
        {%- do key_columns.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set key = key_columns | join(', ') -%}

with

versions as (

    select
        *,
        row_number() over (
            partition by {{ key }}
            order by
                _batch_id desc,
                {% if cursor %}{{ adapter.quote(cursor) }} desc nulls last,{% endif %}
                case when _op = 'delete' then 0 else 1 end
        ) as _version_rank,
        count(*) over (partition by {{ key }}, _batch_id) as _rows_in_batch
    from {{ relation }}

),

latest as (

    select * from versions
    where _version_rank = 1

)

select
    {%- for field in fields %}
    {{ adapter.quote(field) }},
    {%- endfor %}
    _batch_id,
    _extracted_at,
    cast(_rows_in_batch as integer) as _source_duplicates
from latest
where _op <> 'delete'
{% endmacro %}
