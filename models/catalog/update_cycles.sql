with

update_cycles as (

    select * from {{ ref('catalog_update_cycles') }}

),

resource_counts as (

    select update_cycle, count(*) as resource_count
    from {{ ref('catalog_resources') }}
    group by update_cycle

),

final as (

    select
        update_cycles.code,
        update_cycles.name_zh,
        update_cycles.max_age_seconds,
        update_cycles.position,
        coalesce(resource_counts.resource_count, 0) as resource_count

    from update_cycles
    left join resource_counts
        on update_cycles.code = resource_counts.update_cycle

)

select * from final
