with

source as (

    select * from {{ source('housing', 'property_rights') }}

),

renamed as (

    select
        {{ clean_certificate_no('certificate_no') }} as certificate_no,
        {{ clean_identifier('unit_id') }} as unit_id,
        {{ clean_identifier('owner_id') }} as owner_id,
        {{ clean_text('owner_name') }} as owner_name,
        cast(share as {{ catalog_type('decimal(5,4)') }}) as share,
        {{ clean_text('co_ownership') }} as co_ownership,
        cast(registered_date as {{ catalog_type('date') }}) as registered_date,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
