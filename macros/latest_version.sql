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

    Incremental (the shared models are dbt incremental models with the latest_version
    strategy, macros/incremental_latest_version.sql): once the candidate exists, only the
    keys with a row in a batch newer than the candidate's newest _batch_id are ranked,
    every version of those keys is read (so the ranking is the full rebuild's), and a key
    whose latest row is a delete comes out with _tombstone = true: the strategy deletes
    the changed keys from the candidate and inserts the live ones. NULL key columns
    compare equal through latest_version_key_text, as partition by does.
#}
{% macro latest_version(relation, primary_key, cursor, fields) %}
    {%- set key_columns = [] -%}
    {%- for column in primary_key -%}
        {%- do key_columns.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set key = key_columns | join(', ') -%}

with

{% if is_incremental() %}
changed as (

    select distinct
        {%- for column in primary_key %}
        {{ latest_version_key_text(adapter.quote(column)) }} as _key_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ relation }}
    where _batch_id > (select coalesce(max(_batch_id), '') from {{ this }})

),
{% endif %}

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
    from {{ relation }} as source_rows
    {%- if is_incremental() %}
    where exists (
        select 1 from changed
        where
            {%- for column in primary_key %}
            changed._key_{{ loop.index }} = {{ latest_version_key_text('source_rows.' ~ adapter.quote(column)) }}{{ " and" if not loop.last }}
            {%- endfor %}
    )
    {%- endif %}

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
    {%- if is_incremental() %},
    _op = 'delete' as _tombstone
    {%- endif %}
from latest
{%- if not is_incremental() %}
where _op <> 'delete'
{%- endif %}
{% endmacro %}


{#- A key column as text for matching changed keys: NULL as a marker no cleaned key
    can equal (clean_identifier removes whitespace; '<null key>' has a space). -#}
{% macro latest_version_key_text(column) -%}
    coalesce(cast({{ column }} as {{ dbt.type_string() }}), '<null key>')
{%- endmacro %}
