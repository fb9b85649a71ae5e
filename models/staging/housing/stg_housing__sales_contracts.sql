with

source as (

    select * from {{ source('housing', 'sales_contracts') }}

),

renamed as (

    select
        {{ clean_identifier('contract_no') }} as contract_no,
        {{ clean_identifier('unit_id') }} as unit_id,
        {{ clean_identifier('seller_id') }} as seller_id,
        {{ clean_identifier('buyer_id') }} as buyer_id,
        cast(price as {{ catalog_type('decimal(18,2)') }}) as price,
        cast(signed_date as {{ catalog_type('date') }}) as signed_date,
        {{ clean_text('contract_type') }} as contract_type,
        {{ clean_text('status') }} as status,
        cast(updated_at as {{ catalog_type('timestamp') }}) as updated_at,
        lower(trim(_op)) as _op,
        _batch_id,
        _extracted_at

    from source

)

select * from renamed
