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
    rows of batches newer than the candidate's newest _batch_id are read and ranked. That
    gives the full rebuild's latest version of every key they hold: a newer batch outranks
    every older one, so the older versions of such a key cannot win, and the rows counted
    for _source_duplicates are those of the chosen batch. A key whose latest row is a
    delete comes out with _tombstone = true: the strategy deletes the changed keys from
    the candidate and inserts the live ones. NULL key columns compare equal through
    latest_version_key_text, as partition by does.

    The bound is read first and written into the query as a literal, so the warehouse
    prunes by it when scanning raw (DuckDB's zone maps; raw is appended in batch order)
    instead of reading all history. When the newest batches held only deletes, the
    candidate's newest _batch_id is older than them and they are read again: deleting
    keys already gone changes nothing.
#}
{% macro latest_version(relation, primary_key, cursor, fields) %}
    {%- set key_columns = [] -%}
    {%- for column in primary_key -%}
        {%- do key_columns.append(adapter.quote(column)) -%}
    {%- endfor -%}
    {%- set key = key_columns | join(', ') -%}

with

{%- if is_incremental() %}
    {%- set since = latest_version_since() %}
{%- endif %}

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
    where _batch_id > {{ since }}
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


{#- The candidate's newest _batch_id as a quoted SQL literal ('' when it is empty): the
    incremental run's lower bound. -#}
{% macro latest_version_since() -%}
    {%- set newest = none -%}
    {%- if execute -%}
        {%- set found = run_query("select max(_batch_id) from " ~ this) -%}
        {%- set newest = found.columns[0].values()[0] -%}
    {%- endif -%}
    '{{ (newest or "") | replace("'", "''") }}'
{%- endmacro %}
